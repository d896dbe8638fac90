"""One working set opened once, and each command as one call on it (campaign.py, status.py);
which working set and journal an input belongs to (workingset.py)."""
from .campaign import Campaign, Estimate, estimate, plan, send, validate
from .status import JOURNAL_STATES, Status, status
from .workingset import SendRequest, WorkingSetChoice, leaving_journal_as_found, locate_journal, storable

__all__ = ["Campaign", "Estimate", "JOURNAL_STATES", "SendRequest", "Status", "WorkingSetChoice", "estimate",
           "leaving_journal_as_found", "locate_journal", "plan", "send", "status", "storable", "validate"]
