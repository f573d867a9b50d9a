"""Reserved token ids of the generated token tasks and the seq2seq model: PAD, BOS, EOS, then symbols."""

PAD, BOS, EOS, FIRST = 0, 1, 2, 3  # padding, begin / end of sequence; task symbols start at FIRST
