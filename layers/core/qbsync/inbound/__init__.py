"""QuickBooks → platform: what qbsync reads from the firm's company and hands to the platform (service
import today; verified webhooks and CDC reconciliation next)."""
