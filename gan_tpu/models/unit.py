"""UNIT (Liu, Breuel and Kautz 2017): coupled VAE-GANs with a shared latent space.

Per domain an encoder E_i and a generator G_i; the last encoder layer and the first
generator layer are shared by both domains (`enc_shared`, `dec_shared`), which ties the
two VAEs to one latent space Z, as the paper. q_i(z|x) = N(E_i(x), I): z = E_i(x) + ε.
Translation is G_j(E_i(x)). Layers as the authors' PyTorch code (VAEGen): c7s1-64, two 4x4 stride-2 convs and
residual blocks (instance norm, reflection padding) in the encoder; residual blocks,
nearest upsampling + 5x5 convs with layer norm, c7s1-3 tanh in the generator (n_res = 4
residual blocks in all: n_res − 1 private + 1 shared on each side). A 3-scale LSGAN
discriminator per domain (4 layers, no norm).

The objective, as the survey seed writes it (x_i^{i→j} = G_j(z_i)):
  VAE_i = λ1·KL(q_i(z|x_i)) + λ2·|G_i(z_i) − x_i|
  GAN_i = λ0·LSGAN(D_i; x_i, G_i(z_j))
  CC_i  = λ3·KL(q_i(z|x_i)) + λ3·KL(q_j(z|x_i^{i→j})) + λ4·|G_i(E_j(x_i^{i→j}) + ε) − x_i|
with the paper's λ0 = 10, λ1 = λ3 = 0.1, λ2 = λ4 = 100. The terms are computed as the
authors' code computes them (means over pixels; KL(N(μ, I) ‖ N(0, I)) as mean(μ²)); the
code's own weights (gan 1, recon 10, KL 0.01, cycle 10, cycle KL 0.01) are the paper's
divided by 10, a common factor Adam ignores. Its weight decay, 1e-4 (PyTorch Adam's L2),
acts on that 10× smaller loss, so here it is 1e-3. Adam 1e-4, betas (0.5, 0.999).

Differences from the authors' code: the weight sharing is the paper's (their PyTorch
UNIT_Trainer gives each domain its own VAEGen and shares nothing; the shared latent space
then comes from the cycle and KL terms alone); the paper's CC term also counts
KL(q_i(z|x_i)) (their code only the re-encoded codes' KL), here as the seed's objective says; the LR stays
constant by default (theirs halves every 100k iterations, past a 3-hour run's length;
`decay_start` gives a linear decay instead); convs followed
by instance norm have no bias (it cancels a bias exactly).
Submissions: G_monet(E_photo(photo)), the mean code (no ε), as their test code does.
"""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import losses
from gan_tpu.models.registry import register
from gan_tpu.models.translation_layers import (TwoDomainGAN, check_sizes, content_encoder_head, res_block,
                                               upsampling_tail)


def unit_private_encoder(image_size, *, dim, n_downsample, n_res, name):
    """x -> features: c7s1-dim, downsampling, n_res − 1 residual blocks (one domain's own layers)."""
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = content_encoder_head(inputs, dim=dim, n_downsample=n_downsample, name=name)
    for b in range(n_res - 1):
        x = res_block(x, name=f"{name}_res{b}")
    return keras.Model(inputs, x, name=name)


def unit_shared_block(size, width, *, name):
    """One residual block on [size, size, width] maps: the layer both domains share."""
    inputs = keras.Input((size, size, width), name=f"{name}_in")
    return keras.Model(inputs, res_block(inputs, name=f"{name}_res"), name=name)


def unit_private_decoder(size, width, *, n_upsample, n_res, name):
    """shared features -> image: n_res − 1 residual blocks, upsampling, c7s1-3 tanh."""
    inputs = keras.Input((size, size, width), name=f"{name}_in")
    x = inputs
    for b in range(n_res - 1):
        x = res_block(x, name=f"{name}_res{b}")
    return keras.Model(inputs, upsampling_tail(x, n_upsample=n_upsample, name=name), name=name)


@register("unit", dim=64, n_downsample=2, n_res=4, ndf=64, d_layers=4, d_scales=3,
          gan_weight=10.0, kl_weight=0.1, recon_weight=100.0, kl_cycle_weight=0.1, cycle_weight=100.0,
          lr=1e-4, beta_1=0.5, beta_2=0.999, weight_decay=1e-3)
class UNIT(TwoDomainGAN):
    """photo -> Monet through the shared latent space. Batches are (monet, photo) in [-1, 1]."""

    loss_names = ("g_total", "g_adv", "recon", "kl", "cycle", "d_monet", "d_photo")

    def __init__(self, image_size: int, *, dim, n_downsample, n_res, ndf, d_layers, d_scales, gan_weight,
                 kl_weight, recon_weight, kl_cycle_weight, cycle_weight, lr, beta_1, beta_2, weight_decay,
                 **kwargs):
        if n_res < 1:
            raise ValueError(f"model.n_res must be >= 1 (one block is the shared one), got {n_res}")
        check_sizes("UNIT", image_size, d_layers=d_layers, d_scales=d_scales, n_downsample=n_downsample)
        super().__init__(image_size, ndf=ndf, d_layers=d_layers, d_scales=d_scales, gan_weight=gan_weight,
                         lr=lr, beta_1=beta_1, beta_2=beta_2, weight_decay=weight_decay, **kwargs)
        size, width = image_size // 2 ** n_downsample, dim * 2 ** n_downsample
        enc = dict(dim=dim, n_downsample=n_downsample, n_res=n_res)
        self.enc_monet = unit_private_encoder(image_size, name="enc_monet", **enc)
        self.enc_photo = unit_private_encoder(image_size, name="enc_photo", **enc)
        self.enc_shared = unit_shared_block(size, width, name="enc_shared")
        self.dec_shared = unit_shared_block(size, width, name="dec_shared")
        dec = dict(n_upsample=n_downsample, n_res=n_res)
        self.dec_monet = unit_private_decoder(size, width, name="dec_monet", **dec)
        self.dec_photo = unit_private_decoder(size, width, name="dec_photo", **dec)
        photo = keras.Input((image_size, image_size, 3), name="unit_photo")
        self._translator = keras.Model(
            photo, self.dec_monet(self.dec_shared(self.enc_shared(self.enc_photo(photo)))), name="unit_translator")
        self.kl_weight, self.recon_weight = float(kl_weight), float(recon_weight)
        self.kl_cycle_weight, self.cycle_weight = float(kl_cycle_weight), float(cycle_weight)

    @property
    def translator(self):
        return self._translator

    @property
    def generators(self):
        return [self.enc_monet, self.enc_photo, self.enc_shared, self.dec_shared, self.dec_monet, self.dec_photo]

    def encode(self, encoder, x, training):
        """The mean code μ = E(x) and a draw z = μ + ε."""
        mu = self.enc_shared(encoder(x, training=training), training=training)
        return mu, mu + self.normal(ops.shape(mu), mu.dtype)

    def decode(self, decoder, z, training):
        return decoder(self.dec_shared(z, training=training), training=training)

    def fakes(self, monet, photo, training):
        _, z_monet = self.encode(self.enc_monet, monet, training)
        _, z_photo = self.encode(self.enc_photo, photo, training)
        return self.decode(self.dec_monet, z_photo, training), self.decode(self.dec_photo, z_monet, training)

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        mu_monet, z_monet = self.encode(self.enc_monet, monet, training)
        mu_photo, z_photo = self.encode(self.enc_photo, photo, training)
        recon = self.recon_weight * (losses.l1(monet, self.decode(self.dec_monet, z_monet, training))
                                     + losses.l1(photo, self.decode(self.dec_photo, z_photo, training)))
        fake_monet = self.decode(self.dec_monet, z_photo, training)
        fake_photo = self.decode(self.dec_photo, z_monet, training)
        # cycle: re-encode each translation in its new domain, decode back
        mu_photo_again, z_photo_again = self.encode(self.enc_monet, fake_monet, training)
        mu_monet_again, z_monet_again = self.encode(self.enc_photo, fake_photo, training)
        cycle = self.cycle_weight * (losses.l1(photo, self.decode(self.dec_photo, z_photo_again, training))
                                     + losses.l1(monet, self.decode(self.dec_monet, z_monet_again, training)))
        kl_of = losses.kl_unit_variance
        kl = (self.kl_weight + self.kl_cycle_weight) * (kl_of(mu_monet) + kl_of(mu_photo)) \
            + self.kl_cycle_weight * (kl_of(mu_photo_again) + kl_of(mu_monet_again))
        adv = self.adversarial(fake_monet, fake_photo)
        total = adv + recon + kl + cycle + self.decay(self.generators)
        return total, {"g_total": total, "g_adv": adv, "recon": recon, "kl": kl, "cycle": cycle}
