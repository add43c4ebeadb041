"""One module per `ademvl` sub-command."""
