"""Photos to vectors: the device and precision, the encoder models, augmentations, batched
encoder passes (eager or ONNX), the library's starting embeddings and concept scores, and
the encoder files a run keeps."""
