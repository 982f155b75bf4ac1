"""REGNN: perceptual processor (MulT), cognitive processor (latent mean + edges), motor processor (reversible GNN)."""
