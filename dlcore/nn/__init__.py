"""dlcore.nn: layers, losses and containers following one protocol (see :mod:`dlcore.nn.base`).

    layer.forward(x) -> y,  layer.backward(dy) -> dx,  layer.params / layer.grads (name -> array)

Grouped below by topic (feed-forward, convolutional, recurrent, Transformer). They are the library's
own layers and the references that the course's released chapters (``course/``) check a student's
layers against; nothing here depends on which chapters exist.
"""

from dlcore.nn import functional, im2col, init
from dlcore.nn.activations import ELU, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Softmax, Tanh
from dlcore.nn.attention import AdditiveAttention, DotAttention
from dlcore.nn.base import Layer, Loss, check_array, check_dtype_match, check_labels
from dlcore.nn.composite import Composite
from dlcore.nn.container import Sequential
from dlcore.nn.conv import Conv2D
from dlcore.nn.embedding import Embedding
from dlcore.nn.functional import log_sigmoid, log_softmax, logsumexp, one_hot, sigmoid, softmax, softplus
from dlcore.nn.gates import Add, Mul
from dlcore.nn.layer_norm import LayerNorm
from dlcore.nn.linear import Affine, Flatten
from dlcore.nn.local_norm import LocalContrastNorm, LocalResponseNorm
from dlcore.nn.losses import MSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from dlcore.nn.metric import ContrastiveLoss, TripletLoss
from dlcore.nn.multihead_attention import MultiHeadAttention
from dlcore.nn.normalization import BatchNorm
from dlcore.nn.pooling import AvgPool2D, GlobalAvgPool2D, LpPool2D, MaxPool2D
from dlcore.nn.positional import PositionalEncoding
from dlcore.nn.recurrent import GATE_ORDER, GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, RNNCell
from dlcore.nn.regularization import Dropout
from dlcore.nn.residual import ResidualBlock
from dlcore.nn.seq2seq import Decoder, Encoder, Seq2Seq
from dlcore.nn.time_layers import TimeAffine, TimeSoftmaxCrossEntropy
from dlcore.nn.transformer import TransformerEncoderLayer

__all__ = [
    # protocol and checks
    "Layer", "Loss", "check_array", "check_dtype_match", "check_labels",
    # modules
    "init", "functional", "im2col",
    # functions
    "sigmoid", "softplus", "log_sigmoid", "logsumexp", "softmax", "log_softmax", "one_hot",
    # layers
    "Add", "Mul", "Affine", "Flatten",
    "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "PReLU", "Maxout", "Softmax",
    "Dropout", "BatchNorm", "Sequential", "Composite",
    # convolutional
    "Conv2D", "MaxPool2D", "AvgPool2D", "LpPool2D", "GlobalAvgPool2D", "LocalResponseNorm", "LocalContrastNorm",
    "ResidualBlock", "ContrastiveLoss", "TripletLoss",
    # recurrent and sequence-to-sequence
    "Embedding", "RNN", "RNNCell", "LSTM", "LSTMCell", "GATE_ORDER", "GRU", "GRUCell", "Bidirectional",
    "TimeAffine", "TimeSoftmaxCrossEntropy", "DotAttention", "AdditiveAttention", "Encoder", "Decoder", "Seq2Seq",
    # Transformer
    "LayerNorm", "MultiHeadAttention", "PositionalEncoding", "TransformerEncoderLayer",
    # losses
    "SoftmaxCrossEntropy", "MSE", "SigmoidBinaryCrossEntropy",
]
