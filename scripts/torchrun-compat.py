#!/usr/bin/env python3
"""torchrun for Debian 12's python3-torch (torch 1.13 on Python 3.11).

Its torchrun crashes before starting any worker ("AttributeError: 'NoneType' object has no
attribute 'get'" in to_map): Std.from_str("0") walks the IntFlag Std, and Python 3.11 no longer
yields the zero member NONE (nor the alias ALL = OUT|ERR), so the default --redirects 0 and
--tee 0 become None. This wrapper maps the numbers to Std itself, then runs torchrun unchanged.
A newer torch (pip) does not need it. Usage: python3 scripts/torchrun-compat.py <torchrun args>
"""
import re
import sys

from torch.distributed.elastic.multiprocessing import api

_original = api.Std.from_str


def _from_str(vm):
    if re.fullmatch(r"[0-3]", vm):
        return api.Std(int(vm))
    if re.fullmatch(r"(\d:[0-3],)*\d:[0-3]", vm):
        return {int(i): api.Std(int(v)) for i, v in (m.split(":") for m in vm.split(","))}
    return _original(vm)


api.Std.from_str = staticmethod(_from_str)

from torch.distributed.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
