# Former name of van-b3_8xb128_in1k.py (VAN-b3, 'large'), kept as an alias.
_base_ = './van-b3_8xb128_in1k.py'
