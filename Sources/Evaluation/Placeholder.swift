import LoRACore
