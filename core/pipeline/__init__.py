"""The jobs that run the rooms below in order: index (scan, decode, embed, map, adapt,
check), update, the other encoder's map, similar-to-a-file, and index under torchrun."""
