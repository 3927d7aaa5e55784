"""Runtime: what a process needs to run the models well: the weights, downloaded and verified
(``weights``), the floating-point arithmetic chosen for this CPU (``precision``) and glibc
malloc's settings (``allocator``). Importing this package is cheap."""
