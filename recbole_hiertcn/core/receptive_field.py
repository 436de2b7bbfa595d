"""How far back one output of HierTCN's causal TCN sees."""


def receptive_field(kernel_size, dilations, convs_per_block=1):
    """Positions (itself included) one output of a causal TCN sees: each convolution with
    dilation ``d`` reaches ``(kernel_size - 1) * d`` positions further back, and the blocks
    stack their reaches."""
    return 1 + convs_per_block * (kernel_size - 1) * sum(dilations)
