"""The selective-sampling daemon: featurize, route, run."""
