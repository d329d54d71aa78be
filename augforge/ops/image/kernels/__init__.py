"""Pure tensor kernels shared by the image ops (no registry, no validation)."""
