"""kar98k controller side: spec model, pattern engine, verdict, controller core, local runner, CLI.

Imports the load pod's protocol models; never imports kopf or the kubernetes client.
"""

__version__ = "0.1.0"
