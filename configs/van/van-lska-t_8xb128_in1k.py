# Former name of van-lska-b0_8xb128_in1k.py, kept as an alias.
_base_ = './van-lska-b0_8xb128_in1k.py'
