"""Real-time usage limits: hard caps, soft caps and alerts, decided with the batch that counts the usage."""
