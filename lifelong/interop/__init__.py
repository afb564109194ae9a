"""Bridges to other continual-learning libraries. Each lives in its own subpackage and imports its
library only when one of its functions is called, so `import lifelong` never needs them."""
