"""PhotoAtlas desktop application (Qt)."""
