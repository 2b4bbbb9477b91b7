"""The library folder: scanning photo folders into the catalog, decoding photos into the
pixel cache, EXIF, the runs on disk, and the Library object that opens and locks it all."""
