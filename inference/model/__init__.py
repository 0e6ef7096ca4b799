"""The DeepSeek-V4 network: config, the model (DeepSeek's classes and names), RoPE, attention dispatch onto kernels/,
incremental state, reference numerics, and the model runner that builds each forward call's inputs."""
