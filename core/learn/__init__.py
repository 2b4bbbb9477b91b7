"""Learning the user's photos: the NT-Xent loss, the one fit loop, pixel training and the
adapter on a bank of views, the "same scene" space, and the label-free check that keeps a
trained encoder only where it measurably wins."""
