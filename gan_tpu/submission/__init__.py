"""The submission stage: stream generated images into a valid ``images.zip``, check it, submit it."""
