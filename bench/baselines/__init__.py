"""Hand-written Keras and PyTorch versions of the MNIST specs, as a user would write them."""
