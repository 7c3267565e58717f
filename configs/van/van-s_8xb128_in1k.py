# Former name of van-b1_8xb128_in1k.py (VAN-b1, 'small'), kept as an alias.
_base_ = './van-b1_8xb128_in1k.py'
