"""Stand-ins for the outside world the pipeline talks to (beside the DocSpace simulator): mail and the pipeline."""
