"""kar98k load pod: turns a plan (rate, targets, epoch, lease) into precisely paced requests.

This package never imports the operator side, kopf or the kubernetes client.
"""

__version__ = "0.1.0"
