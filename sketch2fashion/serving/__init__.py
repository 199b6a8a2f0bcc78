"""The BentoML service behind `service.py`: configuration, request checks, champions, metrics.

`service.py` (repo root) holds only the three BentoML services; everything they do lives in
these modules so it can be read and tested without starting a server. Import the submodules
directly; this file stays empty so that importing the config does not pull in torch.
"""
