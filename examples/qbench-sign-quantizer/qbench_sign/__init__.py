"""An example third-party qbench plugin: the lookup-free sign quantizer."""
