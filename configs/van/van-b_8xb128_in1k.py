# Former name of van-b2_8xb128_in1k.py (VAN-b2, 'base'), kept as an alias.
_base_ = './van-b2_8xb128_in1k.py'
