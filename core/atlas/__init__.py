"""The map: its layout (UMAP, clusters, representatives), the neighbour index behind every
"find similar", and queries by example photos."""
