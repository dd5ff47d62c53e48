"""coupler-rnn: LSTM and GRU models on the torch engine, sequence and time-series data loaders."""
