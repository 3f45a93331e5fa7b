"""PyTorch definition of the toolkit's text-to-image velocity model (Sources/Models).

A reflow checkpoint (safetensors) carries everything needed to rebuild it: the model spec and
the tokenizer as JSON in its metadata, the weights under "text.*" and "net.*" with the same
names these modules use, so `load_state_dict(strict=True)` takes them as they are.

    from reflow_model import load_checkpoint
    model, meta = load_checkpoint("runs/fashion/teacher.safetensors")
    text = model.encode(["a photo of a sneaker"])
    v = model.velocity(x, t, text)        # x [B, C, H, W], t [B] in [0, 1]

Time convention (as in the checkpoint's metadata): t = 0 is noise, t = 1 data,
x_t = t x1 + (1 - t) x0, v = x1 - x0.
"""
import json
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

MASKED = -1e9  # additive mask value for padded keys (finite: an all-padded row stays defined)


class Tokenizer:
    """Word tokenizer: ids 0 = pad, 1 = unknown, 2 = start (every sequence begins with it)."""
    PAD, UNKNOWN, START = 0, 1, 2

    def __init__(self, words, max_tokens):
        self.words, self.max_tokens = list(words), int(max_tokens)
        self.index = {w: i for i, w in enumerate(self.words)}

    @staticmethod
    def split(text):
        # Letters, digits, '-', '/' and apostrophes form words; everything else separates them.
        return [w for w in re.split(r"[^\w\-/']|_", text.lower()) if w]

    def encode(self, text):
        ids = [self.START]
        for w in self.split(text):
            if len(ids) >= self.max_tokens:
                break
            ids.append(self.index.get(w, self.UNKNOWN))
        n = len(ids)
        return ids + [self.PAD] * (self.max_tokens - n), n

    def batch(self, prompts):
        """ids [B, L] (int64) and padding flags [B, L] (True = padded)."""
        enc = [self.encode(p) for p in prompts]
        ids = torch.tensor([e[0] for e in enc], dtype=torch.long)
        lengths = torch.tensor([e[1] for e in enc], dtype=torch.long)
        padding = torch.arange(self.max_tokens)[None, :] >= lengths[:, None]
        return ids, padding


class MultiheadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, context_dim=None):
        super().__init__()
        context_dim = context_dim or embed_dim
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(context_dim, embed_dim)
        self.v_proj = nn.Linear(context_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x, context=None, padding=None):
        ctx = x if context is None else context
        b, lq, _ = x.shape
        lk = ctx.shape[1]

        def split(t, length):
            return t.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q_proj(x), lq), split(self.k_proj(ctx), lk), split(self.v_proj(ctx), lk)
        mask = None
        if padding is not None:
            mask = torch.zeros(b, 1, 1, lk, dtype=x.dtype).masked_fill(padding[:, None, None, :], MASKED)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(o.transpose(1, 2).reshape(b, lq, -1))


class TransformerBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width), MultiheadAttention(width, heads)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x, padding):
        h = x + self.attn(self.norm1(x), padding=padding)
        return h + self.fc2(F.gelu(self.fc1(self.norm2(h))))


class TextEncoder(nn.Module):
    def __init__(self, vocabulary, max_tokens, width, layers, heads):
        super().__init__()
        self.tokens = nn.Embedding(vocabulary, width)
        self.positions = nn.Parameter(torch.zeros(max_tokens, width))
        self.blocks = nn.ModuleList([TransformerBlock(width, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)

    def forward(self, ids, padding):
        """-> (states [B, L, W], pooled [B, W] masked mean, padding [B, L])."""
        h = self.tokens(ids) + self.positions[: ids.shape[1]]
        for b in self.blocks:
            h = b(h, padding)
        h = self.norm(h)
        w = (~padding).to(h.dtype)
        pooled = (h * (w / w.sum(1, keepdim=True))[..., None]).sum(1)
        return h, pooled, padding


class SinusoidalTime(nn.Module):
    """[sin(1000 t f_i), cos(1000 t f_i)], f_i = 10000^(-i / (half - 1)); computed in float64."""
    def __init__(self, dim, scale=1000.0, max_period=10000.0):
        super().__init__()
        half = dim // 2
        step = math.log(max_period) / max(half - 1, 1)
        self.register_buffer("freqs", torch.exp(-torch.arange(half, dtype=torch.float64) * step), persistent=False)
        self.scale = scale

    def forward(self, t):
        a = (self.scale * t.to(torch.float64))[:, None] * self.freqs[None, :]
        return torch.cat([a.sin(), a.cos()], 1).to(torch.float32)


class Conditioning(nn.Module):
    def __init__(self, time_features, text_width, width):
        super().__init__()
        self.time = SinusoidalTime(time_features)
        self.fc1, self.fc2 = nn.Linear(time_features, width), nn.Linear(width, width)
        self.text = nn.Linear(text_width, width)

    def forward(self, t, pooled):
        return F.silu(self.fc2(F.silu(self.fc1(self.time(t)))) + self.text(pooled))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, embedding, groups, dropout):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(groups, cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(embedding, 2 * cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, 1)
        h = h * (scale + 1) + shift
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.skip is None else self.skip(x)) + h


class CrossAttentionBlock(nn.Module):
    def __init__(self, channels, text_width, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = MultiheadAttention(channels, max(1, channels // 32), text_width)

    def forward(self, x, text):
        b, c, h, w = x.shape
        q = self.norm(x).view(b, c, h * w).transpose(1, 2)
        a = self.attn(q, context=text[0], padding=text[2])
        return x + a.transpose(1, 2).reshape(b, c, h, w)


class UNetLevel(nn.Module):
    def __init__(self, cin, cout, count, attention, spec, embedding):
        super().__init__()
        self.blocks = nn.ModuleList([ResBlock(cin if i == 0 else cout, cout, embedding, spec["groups"], spec["dropout"])
                                     for i in range(count)])
        self.attns = nn.ModuleList([CrossAttentionBlock(cout, spec["textWidth"], spec["groups"])
                                    for _ in range(count)] if attention else [])

    def forward(self, x, emb, text):
        for i, b in enumerate(self.blocks):
            x = b(x, emb)
            if len(self.attns):
                x = self.attns[i](x, text)
        return x


class UNet(nn.Module):
    def __init__(self, spec):
        super().__init__()
        ch, g = spec["levels"], spec["groups"]
        e = 4 * ch[0]
        self.cond = Conditioning(spec["timeEmbedding"], spec["textWidth"], e)
        self.stem = nn.Conv2d(spec["channels"], ch[0], 3, padding=1)
        down, ds, prev = [], [], ch[0]
        for i, c in enumerate(ch):
            down.append(UNetLevel(prev, c, spec["blocksPerLevel"], i in spec["attentionLevels"], spec, e))
            prev = c
            if i < len(ch) - 1:
                ds.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.down, self.downsample = nn.ModuleList(down), nn.ModuleList(ds)
        last = ch[-1]
        self.mid1 = ResBlock(last, last, e, g, spec["dropout"])
        self.mid_attn = CrossAttentionBlock(last, spec["textWidth"], g)
        self.mid2 = ResBlock(last, last, e, g, spec["dropout"])
        up, us, prev = [], [], last
        for i in range(len(ch) - 1, -1, -1):
            up.append(UNetLevel(prev + ch[i], ch[i], spec["blocksPerLevel"], i in spec["attentionLevels"], spec, e))
            prev = ch[i]
            if i > 0:
                us.append(nn.Conv2d(ch[i], ch[i - 1], 3, padding=1))
                prev = ch[i - 1]
        self.up, self.upsample = nn.ModuleList(up), nn.ModuleList(us)
        self.out_norm = nn.GroupNorm(g, ch[0])
        self.out_conv = nn.Conv2d(ch[0], spec["channels"], 3, padding=1)

    def forward(self, x, t, text):
        emb = self.cond(t, text[1])
        h, skips = self.stem(x), []
        for i, level in enumerate(self.down):
            h = level(h, emb, text)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb), text), emb)
        for j, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], 1), emb, text)
            if j < len(self.upsample):
                h = self.upsample[j](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


class MLPVelocity(nn.Module):
    """Residual MLP (toy2d, 8x8 digits): h += fc_i(silu(h + cond_i(emb))); out = fc(silu(h))."""
    def __init__(self, spec):
        super().__init__()
        dim, hidden = spec["channels"] * spec["height"] * spec["width"], spec["hidden"]
        self.input = nn.Linear(dim, hidden)
        self.cond = Conditioning(spec["timeEmbedding"], spec["textWidth"], hidden)
        self.blocks = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(spec["depth"])])
        self.block_cond = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(spec["depth"])])
        self.output = nn.Linear(hidden, dim)

    def forward(self, x, t, text):
        emb = self.cond(t, text[1])
        h = self.input(x.flatten(1))
        for fc, c in zip(self.blocks, self.block_cond):
            h = h + fc(F.silu(h + c(emb)))
        return self.output(F.silu(h)).view_as(x)


class FlowModel(nn.Module):
    def __init__(self, spec, tokenizer):
        super().__init__()
        self.spec, self.tokenizer = spec, tokenizer
        self.text = TextEncoder(spec["vocabularySize"], spec["maxTokens"], spec["textWidth"],
                                spec["textLayers"], spec["textHeads"])
        self.net = UNet(spec) if spec["kind"] == "unet" else MLPVelocity(spec)

    def encode(self, prompts):
        return self.text(*self.tokenizer.batch(prompts))

    def encode_ids(self, ids, padding):
        return self.text(ids, padding)

    def velocity(self, x, t, text):
        return self.net(x, t, text)


def load_checkpoint(path):
    """(FlowModel in eval mode with the checkpoint's weights, metadata dict)."""
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        if "model_spec" not in meta or "tokenizer" not in meta:
            raise ValueError(f"{path}: metadata has no 'model_spec' and 'tokenizer': not a reflow model checkpoint")
        state = {k: f.get_tensor(k) for k in f.keys()}
    spec, tok = json.loads(meta["model_spec"]), json.loads(meta["tokenizer"])
    model = FlowModel(spec, Tokenizer(tok["words"], tok["max_tokens"]))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval(), meta
