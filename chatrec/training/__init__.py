"""Offline fine-tuning: examples built through the runtime's prompting, batches and losses, projector
alignment, the training loop with checkpoints, and the model card. Runtime modules never import this."""
