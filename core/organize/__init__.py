"""What a user does with the map: duplicates and bursts, albums, events, tags, cluster names
and words, XMP sidecars, and copying photos out."""
