"""Network backends and what they share: transactions, policy, flow metering."""
