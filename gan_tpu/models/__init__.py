"""Model zoo: `build(name, image_size=..., **options)`; `names()` lists what is registered."""
from gan_tpu.models.registry import build, defaults, names, register  # noqa: F401
from gan_tpu.models import cyclegan  # noqa: F401,E402  (registers)
from gan_tpu.models import bayesian_cyclegan, ugatit  # noqa: F401,E402  (translation models)
from gan_tpu.models import drit, munit, unit  # noqa: F401,E402  (the survey's translation zoo)
from gan_tpu.models import artgan, dcgan, sngan, wgan_gp  # noqa: F401,E402  (noise-to-image models)
from gan_tpu.models import biggan  # noqa: F401,E402  (noise-to-image: BigGAN)
from gan_tpu.models import cut, stargan  # noqa: F401,E402  (cut, fastcut, stargan)
