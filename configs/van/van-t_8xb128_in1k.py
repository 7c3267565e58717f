# Former name of van-b0_8xb128_in1k.py (VAN-b0, 'tiny'), kept as an alias.
_base_ = './van-b0_8xb128_in1k.py'
