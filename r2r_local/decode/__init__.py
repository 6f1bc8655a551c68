"""The decoding core: one loop (decoder.py), its modes as policies (policies.py), a request's
tokens (transcript.py) and what it gives back (output.py). See docs/design.md."""

from r2r_local.decode.decoder import Decoder, Request
from r2r_local.decode.output import Generation
from r2r_local.decode.policies import LARGE, ROUTED, SMALL, Policy, policy_for_mode, routed

__all__ = ["Decoder", "Generation", "LARGE", "Policy", "ROUTED", "Request", "SMALL", "policy_for_mode", "routed"]
