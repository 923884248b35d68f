"""Distillation: methods (losses), teachers, the trainer and the chain of generations."""
