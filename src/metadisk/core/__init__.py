"""Sans-I/O building blocks shared by every metadisk role.

Nothing here opens a socket or a file or reads a clock: time, randomness and keys come in as
arguments, so every function is a pure transformation over bytes that tests can pin down exactly.
"""
