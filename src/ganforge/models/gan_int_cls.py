"""GAN-INT-CLS: Reed, Akata, Yan, Logeswaran, Schiele & Lee, "Generative Adversarial Text to Image
Synthesis", ICML 2016.

What is different from CGAN: the condition is a sentence, through a text encoder trained
beforehand with the joint image-text embedding objective (ganforge/text.py) and then frozen. G
and D each compress the embedding (FC + leaky ReLU) and take it beside z / beside D's last
feature map. Two changes to the objective make up the name:

- CLS, the matching-aware discriminator: D sees three kinds of pairs, real image with its text
  (real), real image with another image's text (fake: "mismatched") and generated image with
  its text (fake). D's loss is log D(x, h) + (log(1 - D(x, h^)) + log(1 - D(G(z, h), h))) / 2, so D
  must judge whether an image fits its text, not only whether it looks real.
- INT: G is also trained on interpolations beta * h1 + (1 - beta) * h2 of two captions'
  embeddings (beta = 0.5), which have no real image: the embedding manifold between captions is
  filled in, and D judges those fakes with the interpolated text.

``--set cls=false`` / ``int=false`` give the paper's GAN, GAN-CLS and GAN-INT ablations. On the
digit caption sets half of D's mismatched texts are, by default, the image's own caption with one
word swapped (``cls_swap``; 0 is the paper's), so that D must check the digit and not only the
colours; ``d_norm`` picks D's normalisation (batch, as in the paper; layer; none). Probes of the
shape collapse on ``mnist-captions`` (docs/text.md), all off by default: ``digit_swap`` (the share of
swapped mismatches that swap the digit word), ``emb_noise`` (G trained on e + sigma * eps, a CA-like
noisy condition without the KL) and ``g_first_norm=unit`` (G's first batch norm per unit, which
removes a template shared by the whole batch). D options from the fourth pass, also off by default:
``d_mbstd`` (minibatch standard deviation), ``d_mbd`` (minibatch discrimination), ``d_contrast`` (a
colour-free contrast channel at D's input, so D checks the digit's shape early) and the engine's
``spectral_norm``.
Captions come from a captioned data set (``mnist-captions``, ``digits-captions``,
``captions:PATH``); ``ganforge sample RUN --text "a thick blue three on yellow"`` draws from one.
"""
from __future__ import annotations

import torch

from ..data.captions import MAX_WORDS, Vocabulary, check_text, grammar_words
from ..errors import ConfigError, DataError
from ..registry import register
from ..text import (ENCODER_DEFAULTS, TextD, TextEncoder, TextG, default_path, encoder_from, load_encoder_file,
                    pick_captions, save_encoder, swap_groups, swapped_captions, train_encoder)
from .base import GANModel, Phase

BANK = 256  # training captions kept for drawing samples without --text


class TextConditional:
    """A model conditioned on captions through a frozen text encoder ``T`` (psi).

    ``build_text()`` in ``build``: T comes from ``text_encoder`` (a file), else the cache for the
    data and settings, else (digit caption sets) it is trained in ``prepare`` on the run's
    training data and cached. A bank of training captions (a buffer) gives samples without text.
    G's inputs are ``{"z", "tokens"}`` (word indices) or ``{"z", "emb"}`` (embeddings).
    """

    sample_options = ("text",)
    evaluation = "text"

    def build_text(self) -> None:
        c = self.cfg
        if c["d_norm"] not in ("batch", "layer", "none"):
            raise ConfigError(f"d_norm must be batch, layer or none, got {c['d_norm']!r}")
        if not 0.0 <= c["cls_swap"] <= 1.0:
            raise ConfigError(f"cls_swap must lie in [0, 1], got {c['cls_swap']}")
        if not (c["digit_swap"] == -1 or 0.0 <= c["digit_swap"] <= 1.0):
            raise ConfigError(f"digit_swap must lie in [0, 1] (or -1: uniform over the word groups), got {c['digit_swap']}")
        if c["pretrained_embeddings"]:
            # The data's published embeddings stand in for psi: no encoder, no vocabulary; samples
            # without a batch are drawn from a bank of training embeddings.
            self.T, self.vocab, self.e_dim = None, None, c["emb_dim"]
            self.register_buffer("emb_bank", torch.zeros(BANK, c["emb_dim"]))
            self.register_buffer("bank_n", torch.tensor(0))
            return
        rec = self._encoder_record()
        if rec is not None:
            enc, vocab = encoder_from(rec)
        else:
            vocab = Vocabulary(grammar_words())
            enc = TextEncoder(len(vocab), c["te_dim"], c["te_hidden"], c["te_words"])
        self.T, self.vocab = enc.requires_grad_(False).eval(), vocab
        self.register_buffer("text_ready", torch.tensor(rec is not None))
        self.register_buffer("bank", torch.zeros(BANK, MAX_WORDS, dtype=torch.int16))
        self.register_buffer("bank_n", torch.tensor(0))
        self.e_dim = enc.out_dim

    def _encoder_record(self):
        from ..data import CAPTIONED, parse_name

        c = self.cfg
        if c["text_encoder"]:
            return load_encoder_file(c["text_encoder"])
        path = default_path(c["data"], c, c["seed"])
        if path.is_file():
            return load_encoder_file(path)
        base = parse_name(c["data"])[0]
        if base in CAPTIONED:
            return None  # trained in prepare() from the training data
        if not base.startswith("captions:"):
            raise DataError(f"{self.name} trains on captioned images (mnist-captions, digits-captions, "
                            f"captions:PATH), not {c['data']}")
        raise ConfigError(f"no text encoder for {c['data']}: train one first with `ganforge train-text-encoder "
                          f"--data {c['data']}` (or --set text_encoder=FILE)")

    def prepare(self, raw) -> None:
        vocab = getattr(raw, "vocab", None)
        if vocab is None:
            raise DataError(f"{self.name} trains on captioned images (mnist-captions, digits-captions, "
                            f"captions:PATH), not {raw.name}")
        group = raw.groups["data"]
        if self.cfg["pretrained_embeddings"]:
            if "emb" not in group:
                raise DataError(f"pretrained_embeddings is on, but {raw.name} has no pre-computed embeddings "
                                "(char-CNN-RNN-embeddings.pickle)")
            if group["emb"].shape[-1] != self.e_dim:
                raise ConfigError(f"{raw.name}'s embeddings have {group['emb'].shape[-1]} dimensions; set "
                                  f"emb_dim={group['emb'].shape[-1]}")
            g = torch.Generator().manual_seed(self.cfg["seed"])
            idx = torch.randperm(len(group["emb"]), generator=g)[:BANK]
            emb = group["emb"][idx, torch.randint(group["emb"].shape[1], (len(idx),), generator=g)]
            self.emb_bank[:len(emb)] = emb.float()
            self.bank_n.fill_(len(emb))
            return
        if vocab != self.vocab:
            raise ConfigError(f"the text encoder's vocabulary ({len(self.vocab) - 2} words) is not {raw.name}'s "
                              f"({len(vocab) - 2} words); train one on this data with `ganforge train-text-encoder`")
        if not bool(self.text_ready):
            print(f"{self.name}: training the text encoder on {raw.name} ({self.cfg['te_steps']} steps; cached for "
                  "later runs)", flush=True)
            rec = train_encoder(raw, self.cfg, self.cfg["seed"], progress=True)
            try:
                save_encoder(rec, default_path(self.cfg["data"], self.cfg, self.cfg["seed"]))
            except OSError:
                pass  # an unwritable cache only costs the next run the same training
            self.T.load_state_dict(rec["state"])
            self.text_ready.fill_(True)
        g = torch.Generator().manual_seed(self.cfg["seed"])
        idx = torch.randperm(len(group["tokens"]), generator=g)[:BANK]
        tok = pick_captions(group["tokens"][idx], g)[:, :MAX_WORDS]
        self.bank.zero_()
        self.bank[:len(tok), :tok.shape[1]] = tok.to(self.bank.dtype)
        self.bank_n.fill_(len(tok))

    # -- text to embeddings ------------------------------------------------------------------
    def embed(self, tokens) -> torch.Tensor:
        """psi(t) of word indices (N, L); the encoder is frozen, so no graph is kept."""
        with torch.no_grad():
            return self.T(tokens.to(self.device))

    def batch_embedding(self, batch: dict) -> torch.Tensor:
        """The embedding of one of each item's captions, drawn at random (``emb``: pre-computed ones)."""
        return self.batch_text(batch)[0]

    def batch_text(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embeddings, the word indices they came from; None for pre-computed embeddings)."""
        if self.cfg["pretrained_embeddings"]:
            emb = batch["emb"]
            k = torch.randint(emb.shape[1], (len(emb),), device=emb.device)
            return emb[torch.arange(len(emb), device=emb.device), k].float(), None
        tokens = pick_captions(batch["tokens"])
        return self.embed(tokens), tokens

    def mismatched(self, e: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Text that does not describe each item's image: the next item's (Reed et al.), or, for a
        share ``cls_swap`` of the items of a digit caption set, the item's own caption with one
        digit / colour / attribute word swapped for another (:func:`ganforge.text.swapped_captions`).

        Why the swaps: two random digit captions nearly always differ in a colour, so with the
        paper's mismatches alone D learns to check the colours and never the digit (D(x, h^) far
        below D(G, h)), G gets no gradient towards the captioned digit, and the class agreement
        stays at chance (0.107 after 6,000 steps). A swapped caption differs in one word only."""
        wrong = e.roll(1, 0)
        share = self.cfg["cls_swap"]
        groups = self._swap_groups()
        if tokens is None or share <= 0 or not groups:
            return wrong
        neg, mask = swapped_captions(tokens, groups)  # (G, N, L), (G, N)
        # one existing swap per item, drawn uniformly among the groups its caption has words of, or,
        # with digit_swap = p >= 0, the digit word with probability p (groups[0] is the digits')
        key = torch.rand(mask.shape, device=mask.device) * mask
        p = self.cfg["digit_swap"]
        if p >= 0 and len(groups) > 1:
            digit = (torch.rand(mask.shape[1], device=mask.device) < p) & mask[0]
            key[0] = torch.where(digit, 2.0, torch.where(mask[1:].any(0), 0.0, key[0]))
        pick = key.argmax(0)
        rows = torch.arange(len(tokens), device=tokens.device)
        swapped = self.embed(neg[pick, rows])
        use = (torch.rand(len(e), device=e.device) < share) & mask.any(0)
        return torch.where(use[:, None], swapped.to(e.dtype), wrong)

    def _swap_groups(self):
        if getattr(self, "_groups", None) is None:
            self._groups = swap_groups(self.vocab) if self.vocab is not None else []
        return self._groups

    def tokens_of(self, text) -> torch.Tensor:
        """Captions (a string, a list, or a .txt file of them) as (M, MAX_WORDS) word indices."""
        if self.cfg["pretrained_embeddings"]:
            raise ConfigError(f"this {self.name} run was trained on pre-computed embeddings; it cannot read --text")
        return self.vocab.encode_batch(check_text(text), length=MAX_WORDS)

    def sample_inputs(self, n: int, generator=None, text=None) -> dict:
        """``n`` inputs; with ``text`` (M captions), the samples go to the captions in M equal blocks."""
        z = self.randn(n, self.cfg["z_dim"], generator=generator)
        if text is not None:
            tok = self.tokens_of(text)
            tokens = tok[torch.arange(n) * len(tok) // n]
        else:
            if int(self.bank_n) == 0:
                raise ConfigError(f"{self.name} has no training captions to draw from; pass text=")
            i = torch.randint(int(self.bank_n), (n,), generator=generator) if generator is not None else \
                torch.randint(int(self.bank_n), (n,))
            if self.T is None:
                return {"z": z, "emb": self.emb_bank.cpu()[i].to(z.device)}
            tokens = self.bank.cpu()[i]
        return {"z": z, "tokens": tokens.long().to(z.device)}

    def text_embedding(self, inputs: dict) -> torch.Tensor:
        return inputs["emb"] if "emb" in inputs else self.embed(inputs["tokens"])

    def matching_aware_d_loss(self, D, real, fake, e, out: dict, tag: str = "", tokens=None):
        """Reed et al.'s D loss: real with its text is real; real with mismatched text and fake with
        its text are fake, each at half weight (both go into the fake term's mean). ``tokens``: the
        captions behind ``e``, for the swapped-word mismatches (:meth:`mismatched`)."""
        s_real, s_fake = D(real, e), D(fake, e)
        if self.cfg["cls"]:
            s_wrong = D(real, self.mismatched(e, tokens))
            loss = self.d_adversarial(s_real, torch.cat([s_wrong, s_fake]))
            out[f"D(x,h^){tag}"] = s_wrong.mean().detach()
        else:
            loss = self.d_adversarial(s_real, s_fake)
        out[f"D(x,h){tag}"], out[f"D(G,h){tag}"] = s_real.mean().detach(), s_fake.mean().detach()
        return loss


TEXT_DEFAULTS = {**ENCODER_DEFAULTS, "text_encoder": "", "pretrained_embeddings": False, "emb_dim": 1024,
                 "t_dim": 128, "cls": True, "cls_swap": 0.5, "digit_swap": -1.0,
                 "d_norm": "batch"}


@register
class GANINTCLS(TextConditional, GANModel):
    name = "gan-int-cls"
    family = "conditional"
    paper = "Reed et al., Generative Adversarial Text to Image Synthesis"
    year = 2016
    # t_dim: the compressed embedding (128 in the paper); int_beta: the interpolation's beta.
    defaults = {**TEXT_DEFAULTS, "z_dim": 100, "g_width": 64, "d_width": 64, "loss": "nonsaturating",
                "int": True, "int_beta": 0.5, "emb_noise": 0.0, "g_first_norm": "channel", "d_mbstd": 0,
                "d_contrast": False, "d_mbd": 0}

    def build(self):
        c, s = self.cfg, self.spec
        if not 0.0 <= c["int_beta"] <= 1.0:
            raise ConfigError(f"int_beta must lie in [0, 1], got {c['int_beta']}")
        if c["g_first_norm"] not in ("channel", "unit"):
            raise ConfigError(f"g_first_norm must be channel or unit, got {c['g_first_norm']!r}")
        if not c["emb_noise"] >= 0.0:
            raise ConfigError(f"emb_noise must be >= 0, got {c['emb_noise']}")
        if not (isinstance(c["d_mbstd"], int) and c["d_mbstd"] != 1 and c["d_mbstd"] >= 0):
            raise ConfigError(f"d_mbstd must be 0 (off) or a group size >= 2, got {c['d_mbstd']!r}")
        if not (isinstance(c["d_mbd"], int) and c["d_mbd"] >= 0):
            raise ConfigError(f"d_mbd must be 0 (off) or a number of kernels >= 1, got {c['d_mbd']!r}")
        self.build_text()
        self.G = TextG(self.e_dim, c["t_dim"], c["z_dim"], s.channels, s.image_size, c["g_width"],
                       c["g_first_norm"])
        self.D = TextD(self.e_dim, c["t_dim"], s.channels, s.image_size, c["d_width"], c["d_norm"],
                       c["d_mbstd"], bool(c["d_contrast"]), c["d_mbd"])

    def phases(self):
        # D and G see the same batch of images and captions, as in the paper's Algorithm 1.
        return [Phase("D", self.d_step, ("D",)), Phase("G", self.g_step, ("G",))]

    def generate(self, inputs: dict, net=None):
        return (net or self.G)(inputs["z"], self.text_embedding(inputs))

    def noisy(self, e: torch.Tensor) -> torch.Tensor:
        """G's training condition: e + emb_noise * eps, eps ~ N(0, I) (0: the paper's exact e)."""
        s = self.cfg["emb_noise"]
        return e + s * torch.randn_like(e) if s > 0 else e

    def d_step(self, batch):
        real, (e, tokens) = batch["x"], self.batch_text(batch)
        fake = self.G(self.randn(len(real), self.cfg["z_dim"]), self.noisy(e))
        out = {}
        loss = self.matching_aware_d_loss(self.D, real, fake, e, out, tokens=tokens)
        return {"loss": loss, **out}

    def g_step(self, batch):
        e = self.batch_embedding(batch)
        n = len(e)
        loss = self.g_adversarial(self.D(self.G(self.randn(n, self.cfg["z_dim"]), self.noisy(e)), e))
        out = {}
        if self.cfg["int"]:
            # Interpolated captions have no real image; G must fool D with them too.
            b = self.cfg["int_beta"]
            e_int = b * e + (1 - b) * e.roll(1, 0)
            l_int = self.g_adversarial(self.D(self.G(self.randn(n, self.cfg["z_dim"]), self.noisy(e_int)), e_int))
            loss, out["L_int"] = loss + l_int, l_int.detach()
        return {"loss": loss, **out}
