# Former name of van-lska-b2_8xb128_in1k.py, kept as an alias.
_base_ = './van-lska-b2_8xb128_in1k.py'
