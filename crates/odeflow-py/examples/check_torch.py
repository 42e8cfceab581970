"""check_flow on a PyTorch model trained with torchdiffeq: Ott et al.'s sphere2 classifier
(simple_odenet field, linear head) trained through 2 Euler steps, as in "ResNet after all?"
(ICLR 2021). Prints the verdict; skips with a message when torch or torchdiffeq is missing.

It then saves the trained weights as safetensors with the PyTorch names odeflow reads
(`field.0.weight`, …, `head.weight`; see the README's Weights section) and checks the same
model from the file with `odeflow.check(weights=...)`, the call behind

    odeflow check --weights check_torch.safetensors --model simple_odenet --dataset sphere2 \
        --train-method euler --train-steps 2 --dtype f32 --out-dir check_torch

    pip install torch torchdiffeq
    python crates/odeflow-py/examples/check_torch.py
"""

import sys

try:
    import torch
    import torchdiffeq
    from torch import nn
except ImportError as e:
    print(f"skipped: this example needs torch and torchdiffeq ({e.name} is not installed)")
    sys.exit(0)

import odeflow

torch.manual_seed(0)
data = odeflow.load_data({"data": {"name": "sphere2"}, "solver": {"steps": 2}})
x_train = torch.from_numpy(data["x_train"])  # (2000, 1, 2), float32
y_train = torch.from_numpy(data["y_train"])


class Field(nn.Module):
    """Ott et al.'s simple_odenet on samples of shape (1, d)."""

    def __init__(self, channels=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, channels, 1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv1d(channels, 1, 1),
        )

    def forward(self, t, z):
        return self.net(z)


field, head = Field(), nn.Linear(2, 2)
opt = torch.optim.Adam([*field.parameters(), *head.parameters()], lr=1e-3)
t = torch.tensor([0.0, 1.0])
for it in range(2000):
    idx = torch.randint(0, len(x_train), (128,))
    z1 = torchdiffeq.odeint(field, x_train[idx], t, method="euler", options={"step_size": 0.5})[-1]
    loss = nn.functional.cross_entropy(head(z1.flatten(1)), y_train[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()


@torch.no_grad()
def np_field(t, z):
    return field(t, torch.from_numpy(z)).numpy()


@torch.no_grad()
def np_head(z):
    return head(torch.from_numpy(z).flatten(1)).numpy()


verdict = odeflow.check_flow(
    np_field, data["x_test"], data["y_test"], head=np_head,
    train_method="euler", train_steps=2, plot="check_torch.png",
)
print(verdict.summary)

# The same model from a weights file: the field's keys without the wrapper's `net.` prefix.
try:
    from safetensors.torch import save_file
except ImportError:
    print("skipped the weights-file check: safetensors is not installed")
    sys.exit(0)
tensors = {f"field.{k.removeprefix('net.')}": v for k, v in field.state_dict().items()}
tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
save_file(tensors, "check_torch.safetensors")
from_file = odeflow.check(
    weights="check_torch.safetensors", model="simple_odenet", dataset="sphere2",
    train_method="euler", train_steps=2, dtype="f32", out_dir="check_torch",
)
print(f"from check_torch.safetensors: {from_file.summary}")
assert from_file.valid == verdict.valid
assert abs(from_file.train_accuracy - verdict.train_accuracy) < 1e-3
