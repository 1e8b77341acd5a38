"""c_reference: a plain C kernel of model (b), the practical speed limit (see `kernel`)."""
