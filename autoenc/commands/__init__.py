"""The commands behind `autoenc WORD`, one module each (`main(args) -> exit status`): train and
study compose a config with Hydra; data, evaluate, denoise, compare and report read what exists."""
