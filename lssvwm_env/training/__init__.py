"""Training: stage 0 (autoencoder), latent cache, stage 1 (dynamics with the length curriculum,
truncated BPTT and state resetting), checkpoints, resume, data-parallel processes."""
