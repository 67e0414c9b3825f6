"""What talks to Azure (and keeps the local audit journal): clients, the Resource Graph
runner, the sources, the event source, cancel, the journal, the monitor, doctor."""
