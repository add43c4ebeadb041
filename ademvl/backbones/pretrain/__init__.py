"""How the embedded backbones that are trained here (not converted) are built: the pretraining
pipelines behind ``ademvl.backbones``' cached directories."""
