"""What a lesson trains and checks: the objectives (LeNet on Fashion-MNIST, a synthetic
stand-in), the data, the training loop, claims and the budget. A trial process imports
this layer and ``common`` only, never the run machinery."""
