"""PhotoAtlas core: the Qt-free engine (scan, decode, train, embed, map, search)."""
