"""Builders for the offline `tiny` profile.

Each builder makes a *real* architecture (the same diffusers / transformers classes the
published checkpoints use) with tiny random weights, saves it with `save_pretrained`, and
leaves it in a folder that production code loads through the ordinary
`from_pretrained(folder, local_files_only=True)` path. Nothing here touches a model hub.

Random weights make noise images and garbage text; the point is that every code path,
shape and dtype is the production one, in seconds, on a CPU.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Bump when a builder changes so stale caches are rebuilt instead of reused.
TINY_VERSION = "4"

_SEED = 0
_CLIP_MAX_LENGTH = 77
_T5_MAX_LENGTH = 64

# ChatML template, as Qwen2.5-Instruct ships it (system prompt handled, generation prompt optional).
_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# --------------------------------------------------------------------------- tokenizers


def _byte_symbols() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def clip_tokenizer():
    """A CLIP BPE tokenizer over single bytes (no merges): every text encodes, offline."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=_CLIP_MAX_LENGTH)


def t5_tokenizer():
    """A unigram T5 tokenizer over printable ASCII characters, offline."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(chr(c), -2.0) for c in range(33, 127)]
    pieces += [("\u2581" + chr(c), -1.5) for c in range(33, 127)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=_T5_MAX_LENGTH)


def chat_tokenizer():
    """A Qwen2 byte-level tokenizer with the ChatML special tokens and chat template."""
    from transformers import Qwen2Tokenizer

    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=2048,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = _CHATML_TEMPLATE
    return tokenizer


# --------------------------------------------------------------------------- components


def _seeded() -> None:
    import torch

    torch.manual_seed(_SEED)


def _clip_text_config(tokenizer, *, hidden_size: int = 32, projection_dim: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=_CLIP_MAX_LENGTH,
        projection_dim=projection_dim,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )


def _t5_encoder(tokenizer, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5EncoderModel(config).eval()


def _sd_vae(*, latent_channels: int = 4, flow: bool = False):
    from diffusers import AutoencoderKL

    extra = {}
    if flow:
        # SD3 / FLUX VAEs: no quant convs, shifted latents.
        extra = dict(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
        **extra,
    ).eval()


# --------------------------------------------------------------------------- pipelines


_TINY_UNET = dict(
    block_out_channels=(32, 64),
    layers_per_block=1,
    sample_size=32,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 4),
    norm_num_groups=8,
)


def sd15_unet():
    """The tiny SD 1.x UNet (cross-attention dim 32, two resolutions)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**_TINY_UNET, cross_attention_dim=32).eval()


def sdxl_unet():
    """The tiny SDXL UNet: text_time added conditioning, two text encoders' worth of context."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        **_TINY_UNET,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=32 + 32,
    ).eval()


def build_sd15(path: Path) -> None:
    """Stable Diffusion 1.x: UNet2DConditionModel + CLIP text encoder + PNDM scheduler."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    _seeded()
    tokenizer = clip_tokenizer()
    unet = sd15_unet()
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=_sd_vae(),
        text_encoder=CLIPTextModel(_clip_text_config(tokenizer)).eval(),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)


def build_sd15_inpaint(path: Path) -> None:
    """The layout of stable-diffusion-inpainting: the SD 1.5 pipeline with a 9-channel UNet (latents, mask, masked
    image latents); pixelmcp loads only its UNet."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    build_sd15(path)
    _seeded()
    unet = UNet2DConditionModel(**{**_TINY_UNET, "in_channels": 9}, cross_attention_dim=32).eval()
    base = StableDiffusionInpaintPipeline.from_pretrained(path, local_files_only=True, safety_checker=None,
                                                          requires_safety_checker=False)
    inpainting = StableDiffusionInpaintPipeline(**{**base.components, "unet": unet}, requires_safety_checker=False)
    inpainting.save_pretrained(path)


def build_sdxl(path: Path) -> None:
    """SDXL: two CLIP text encoders (the second with projection), text_time UNet, Euler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    _seeded()
    tokenizer = clip_tokenizer()
    unet = sdxl_unet()
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    pipe = StableDiffusionXLPipeline(
        vae=_sd_vae(),
        text_encoder=CLIPTextModel(_clip_text_config(tokenizer)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_text_config(tokenizer)).eval(),
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
    )
    pipe.save_pretrained(path)


def build_sd3(path: Path) -> None:
    """SD3: MMDiT transformer, two CLIP encoders with projection plus T5, flow-matching Euler."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    _seeded()
    clip_tok = clip_tokenizer()
    t5_tok = t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=16,  # 16-channel latents, as SD3 Medium (its inpainting pipeline checks)
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=16,
    ).eval()
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_sd_vae(latent_channels=16, flow=True),
        text_encoder=CLIPTextModelWithProjection(_clip_text_config(clip_tok)).eval(),
        tokenizer=clip_tok,
        text_encoder_2=CLIPTextModelWithProjection(_clip_text_config(clip_tok)).eval(),
        tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5_encoder(t5_tok, d_model=32),
        tokenizer_3=t5_tok,
    )
    pipe.save_pretrained(path)


def build_flux(path: Path) -> None:
    """FLUX.1 (schnell-style, no guidance embedding): MM-DiT, CLIP pooled + T5, packed latents."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextModel

    _seeded()
    clip_tok = clip_tokenizer()
    t5_tok = t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * 4,  # 4 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
        guidance_embeds=False,
    ).eval()
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
        vae=_sd_vae(flow=True),
        text_encoder=CLIPTextModel(_clip_text_config(clip_tok)).eval(),
        tokenizer=clip_tok,
        text_encoder_2=_t5_encoder(t5_tok, d_model=32),
        tokenizer_2=t5_tok,
    )
    pipe.save_pretrained(path)


def build_chat_llm(path: Path) -> None:
    """A Qwen2 causal LM (the Qwen2.5-Instruct architecture) with a ChatML tokenizer."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    _seeded()
    tokenizer = chat_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config).eval()
    _favour_words(model, tokenizer)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def _favour_words(model, tokenizer) -> None:
    """Zero the embedding rows of every token but letters, comma and period.

    Their logits become exactly 0 while the others stay random, so greedy decoding writes
    word-like gibberish instead of runs of newlines or an immediate end-of-turn: the rewrite
    path then exercises cleaning and generation end to end.
    """
    import torch

    keep = {tokenizer.convert_tokens_to_ids(t) for t in _byte_symbols() if t.isalpha() and t.isascii()}
    keep |= {tokenizer.convert_tokens_to_ids(t) for t in (",", ".")}
    with torch.no_grad():
        tables = {id(t.weight): t.weight for t in (model.get_input_embeddings(), model.get_output_embeddings())}
        for weight in tables.values():
            for token_id in range(weight.shape[0]):
                if token_id not in keep:
                    weight[token_id].zero_()


def _build_controlnet(path: Path, unet_factory: Callable, seed: int) -> None:
    """A ControlNet made from the family's UNet, with its zero convolutions randomised.

    Real ControlNets start from zero convs and learn them; left at zero here, the control
    image would have no effect and no test about it could fail.
    """
    import torch
    from diffusers import ControlNetModel

    _seeded()
    unet = unet_factory()
    # The tiny VAE halves the resolution once, so the control embedding downsamples once too.
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    torch.manual_seed(seed)
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                  controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for conv in zero_convs:
            conv.weight.normal_(0.0, 0.2)
            conv.bias.normal_(0.0, 0.05)
    controlnet.eval().save_pretrained(path)


def _build_ip_adapter(path: Path, unet_factory: Callable, subfolder: str, weight_name: str) -> None:
    """An IP-Adapter checkpoint in the h94/IP-Adapter layout for the family's UNet.

    `{subfolder}/{weight_name}` holds `image_proj.*` (the ImageProjection: 4 tokens) and
    `ip_adapter.{k}.to_k_ip/to_v_ip` for every cross-attention layer, numbered as diffusers
    expects (1, 3, 5, ...); `{subfolder}/image_encoder` holds a CLIP vision model.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    _seeded()
    unet = unet_factory()
    folder = path / subfolder
    folder.mkdir(parents=True)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        image_size=32, patch_size=4, projection_dim=32,
    )).eval()
    encoder.save_pretrained(folder / "image_encoder")
    cross_dim = unet.config.cross_attention_dim
    tokens = 4
    tensors = {
        "image_proj.proj.weight": torch.randn(tokens * cross_dim, encoder.config.projection_dim) * 0.1,
        "image_proj.proj.bias": torch.zeros(tokens * cross_dim),
        "image_proj.norm.weight": torch.ones(cross_dim),
        "image_proj.norm.bias": torch.zeros(cross_dim),
    }
    modules = dict(unet.named_modules())
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue  # self-attention takes no image tokens
        attn = modules[name.removesuffix(".processor")]
        for projection in ("to_k", "to_v"):
            weight = getattr(attn, projection).weight
            tensors[f"ip_adapter.{key_id}.{projection}_ip.weight"] = torch.randn_like(weight) * 0.2
        key_id += 2
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / weight_name))


def _build_lora(path: Path, pipeline: str, unet_factory: Callable, seed: int, *, text_encoder: bool = False) -> None:
    """A LoRA in diffusers' own file format (`pytorch_lora_weights.safetensors`, the peft key layout that
    `save_lora_weights` writes) for the family's UNet attention projections, and with `text_encoder` for the
    CLIP text encoder's too. The up projections are random, not peft's zeros, so the LoRA changes the image."""
    import diffusers
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    _seeded()
    torch.manual_seed(seed)
    config = dict(r=4, lora_alpha=4, init_lora_weights=False)
    unet = unet_factory()
    unet.add_adapter(LoraConfig(**config, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    layers = {"unet_lora_layers": get_peft_model_state_dict(unet)}
    if text_encoder:
        encoder = CLIPTextModel(_clip_text_config(clip_tokenizer())).eval()
        encoder.add_adapter(LoraConfig(**config, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]))
        layers["text_encoder_lora_layers"] = get_peft_model_state_dict(encoder)
    getattr(diffusers, pipeline).save_lora_weights(path, weight_name="pytorch_lora_weights.safetensors", **layers)


def build_depth_anything(path: Path) -> None:
    """Depth Anything (DINOv2 backbone + DPT head) with its image processor."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessorPil,
    )

    _seeded()
    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37, image_size=56,
        patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 64],
        fusion_hidden_size=16, head_hidden_size=8,
    )
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(path)
    DPTImageProcessorPil(
        do_resize=True, size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
        do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(path)


# --------------------------------------------------------------------------- vision


_VLM_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ IMAGE }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _vlm_tokenizer(specials: list[str]):
    """The chat tokenizer plus a model's image placeholder tokens."""
    tokenizer = chat_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", *specials]})
    return tokenizer


def _text_config(tokenizer, config_class):
    return config_class(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )


def _finish_vlm(model, tokenizer, path: Path) -> None:
    from transformers import GenerationConfig

    _favour_words(model, tokenizer)
    text = model.config.get_text_config()
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id
    )
    model.eval().save_pretrained(path)


def build_upernet(path: Path) -> None:
    """UperNet with a ConvNeXt backbone (openmmlab/upernet-convnext-small's architecture), 150 ADE20K classes."""
    from transformers import ConvNextConfig, SegformerImageProcessorPil, UperNetConfig, UperNetForSemanticSegmentation

    _seeded()
    backbone = ConvNextConfig(num_channels=3, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=16, auxiliary_in_channels=32, auxiliary_channels=8,
                           num_labels=150)
    UperNetForSemanticSegmentation(config).eval().save_pretrained(path)
    SegformerImageProcessorPil(size={"height": 64, "width": 64}, do_reduce_labels=True).save_pretrained(path)


def build_vitpose(path: Path) -> None:
    """ViTPose with the simple decoder (usyd-community/vitpose-base-simple's architecture), 17 COCO keypoints. The
    heatmap head is scaled up so that random weights peak above the default keypoint threshold: the tiny
    profile's pose maps show skeletons (at random places) rather than nothing."""
    import torch
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation, VitPoseImageProcessorPil

    _seeded()
    backbone = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[16, 16], hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, mlp_ratio=2, out_indices=[1])
    model = VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, num_labels=17, use_simple_decoder=True))
    with torch.no_grad():
        model.head.conv.weight.mul_(2.0)
    model.eval().save_pretrained(path)
    VitPoseImageProcessorPil(size={"height": 64, "width": 48}).save_pretrained(path)


def build_rtdetr(path: Path) -> None:
    """RT-DETR with a ResNet backbone (PekingU/rtdetr_r50vd_coco_o365's architecture, COCO's first classes) and
    four queries. Its class heads lean towards "person", so that random weights find a few people."""
    import torch
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil, RTDetrResNetConfig

    _seeded()
    backbone = RTDetrResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                                  layer_type="basic", out_features=["stage2", "stage3", "stage4"])
    labels = {0: "person", 1: "bicycle", 2: "car"}
    config = RTDetrConfig(
        backbone_config=backbone, encoder_hidden_dim=16, encoder_in_channels=[16, 32, 64], encoder_ffn_dim=32,
        encoder_attention_heads=2, d_model=16, num_queries=4, decoder_in_channels=[16, 16, 16], decoder_ffn_dim=32,
        decoder_layers=1, decoder_attention_heads=2, num_denoising=0, id2label=labels,
        label2id={name: label for label, name in labels.items()},
    )
    model = RTDetrForObjectDetection(config)
    with torch.no_grad():
        for head in (model.model.enc_score_head, *model.model.decoder.class_embed):
            head.bias[0] += 3.0
    model.eval().save_pretrained(path)
    RTDetrImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(path)


def build_clip(path: Path) -> None:
    """CLIP (text + vision towers, projections, logit scale) with its processor."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    _seeded()
    tokenizer = clip_tokenizer()
    text = _clip_text_config(tokenizer).to_dict()
    vision = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                  image_size=32, patch_size=4)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).eval().save_pretrained(path)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)


def build_clipseg(path: Path) -> None:
    """CLIPSeg (CIDAS/clipseg-rd64-refined's architecture): CLIP encoders plus a small FiLM-conditioned decoder
    that reads activations of chosen vision layers; 32 px input, 8 px patches."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessorPil

    _seeded()
    tokenizer = clip_tokenizer()
    vision = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3, image_size=32,
                  patch_size=8)
    config = CLIPSegConfig(text_config=_clip_text_config(tokenizer).to_dict(), vision_config=vision,
                           projection_dim=32, extract_layers=[1, 2], reduce_dim=16, decoder_num_attention_heads=4,
                           decoder_intermediate_size=32, conditional_layer=0)
    CLIPSegForImageSegmentation(config).eval().save_pretrained(path)
    image_processor = ViTImageProcessorPil(size={"height": 32, "width": 32}, image_mean=[0.485, 0.456, 0.406],
                                           image_std=[0.229, 0.224, 0.225])  # as CIDAS's processor
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)


def siglip_tokenizer():
    """SigLIP's own tokenizer class (SiglipTokenizer: sentencepiece, as the published repos ship it), over a
    tiny unigram model trained here on printable ASCII, so the production tokenizer path is exercised."""
    import sentencepiece
    from transformers import SiglipTokenizer

    corpus = [" ".join(chr(c) * (1 + c % 3) for c in range(33, 127))] * 5 + ["a photo of a cat", "a red car"] * 20
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=128, model_type="unigram",
        character_coverage=1.0, num_threads=1, pad_id=-1, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
        hard_vocab_limit=False,
    )
    with tempfile.TemporaryDirectory() as folder:
        vocab = Path(folder) / "spiece.model"
        vocab.write_bytes(model.getvalue())
        return SiglipTokenizer(vocab_file=str(vocab), model_max_length=_T5_MAX_LENGTH)


def build_siglip(path: Path) -> None:
    """SigLIP (sigmoid loss, learned bias) with SiglipTokenizer, as google/siglip-* repos name it."""
    from transformers import (
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
        SiglipProcessor,
    )

    _seeded()
    tokenizer = siglip_tokenizer()
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                num_hidden_layers=2, max_position_embeddings=_T5_MAX_LENGTH, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                  image_size=32, patch_size=4)
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval().save_pretrained(path)
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)


def build_llava(path: Path) -> None:
    """LLaVA 1.5: CLIP vision tower, MLP projector, causal LM; `<image>` expands to patch tokens."""
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
    )

    tokenizer, common = _llava_parts(Qwen2Config)
    _finish_vlm(LlavaForConditionalGeneration(LlavaConfig(**common)), tokenizer, path)
    LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, **_LLAVA_PROCESSOR,
    ).save_pretrained(path)


#: Processor settings shared by the tiny LLaVA and LLaVA-NeXT (CLIP tower with 8 px patches plus a CLS token).
_LLAVA_PROCESSOR = dict(patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
                        chat_template=_VLM_TEMPLATE.replace("{{ IMAGE }}", "<image>"))


def _llava_parts(text_config_class) -> tuple[Any, dict]:
    """The tokenizer and the config arguments LLaVA and LLaVA-NeXT share: a CLIP vision tower and a small LM."""
    _seeded()
    tokenizer = _vlm_tokenizer(["<image>"])
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=37, num_attention_heads=4,
                  num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=32)
    return tokenizer, dict(
        vision_config=vision, text_config=_text_config(tokenizer, text_config_class).to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-2,
    )


def build_llava_next(path: Path) -> None:
    """LLaVA-NeXT (1.6): LLaVA with dynamic high resolution (the image tiled on a grid of pinpoints)."""
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
        Qwen2Config,
    )

    tokenizer, common = _llava_parts(Qwen2Config)
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    _finish_vlm(LlavaNextForConditionalGeneration(LlavaNextConfig(**common, image_grid_pinpoints=pinpoints)),
                tokenizer, path)
    LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                   image_grid_pinpoints=pinpoints),
        tokenizer=tokenizer, **_LLAVA_PROCESSOR,
    ).save_pretrained(path)


def build_idefics3(path: Path) -> None:
    """Idefics3 (SmolVLM): SigLIP-style vision encoder, pixel shuffle, image split into tiles plus a global view."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        LlamaConfig,
    )

    _seeded()
    tokenizer = _vlm_tokenizer(["<image>", "<fake_token_around_image>", "<global-img>"])
    text = _text_config(tokenizer, LlamaConfig).to_dict()
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        text_config=text, scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=text["pad_token_id"],
    )
    _finish_vlm(Idefics3ForConditionalGeneration(config), tokenizer, path)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32},
                                                  do_image_splitting=True),
        tokenizer=tokenizer, image_seq_len=4,  # (32 / 8)^2 patches, pixel-shuffled by 2x2
        chat_template=_VLM_TEMPLATE.replace("{{ IMAGE }}", "<image>"),
    )
    processor.save_pretrained(path)


def build_internvl(path: Path) -> None:
    """InternVL (the transformers-native `-hf` layout): InternViT, pixel shuffle by 0.5, a Qwen2 LM; images as
    <img><IMG_CONTEXT>...</img>, cropped into tiles like the published processor does."""
    import tempfile

    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration, Qwen2Config

    from pixelmcp.engine.vision import ImageOnlyInternVLProcessor

    _seeded()
    specials = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>"}
    with tempfile.TemporaryDirectory() as staging:  # the named image tokens are tokenizer attributes, as published
        _vlm_tokenizer(list(specials.values())).save_pretrained(staging)
        tokenizer = type(chat_tokenizer()).from_pretrained(staging, extra_special_tokens=specials)
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=[32, 32], patch_size=[8, 8]),
        text_config=_text_config(tokenizer, Qwen2Config).to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5,
    )
    _finish_vlm(InternVLForConditionalGeneration(config), tokenizer, path)
    processor = ImageOnlyInternVLProcessor(
        image_processor=GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=True,
                                                 min_patches=1, max_patches=4),
        tokenizer=tokenizer, image_seq_length=4,  # (32 / 8)^2 patches, pixel-shuffled by 0.5
        chat_template=_VLM_TEMPLATE.replace("{{ IMAGE }}", "<IMG_CONTEXT>"),
    )
    processor.save_pretrained(path)
    _published_processor_name(path, ImageOnlyInternVLProcessor)


def _published_processor_name(path: Path, processor_class) -> None:
    """The published repos name the library's processor class; pixelmcp's image-only subclass reads them as is."""
    published = processor_class.__mro__[1].__name__
    for name in ("processor_config.json", "tokenizer_config.json"):
        file = path / name
        if file.is_file():
            file.write_text(file.read_text().replace(f'"{processor_class.__name__}"', f'"{published}"'))


def build_qwen2_vl(path: Path) -> None:
    """Qwen2-VL: ViT with 2x2 patch merging and M-RoPE; images as <|vision_start|><|image_pad|>...<|vision_end|>."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from pixelmcp.engine.vision import ImageOnlyQwen2VLProcessor

    _build_qwen_vl(path, Qwen2VLConfig, Qwen2VLForConditionalGeneration, ImageOnlyQwen2VLProcessor,
                   dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2))


def build_qwen2_5_vl(path: Path) -> None:
    """Qwen2.5-VL (the default VLM's family): windowed attention in the ViT, full attention in some blocks."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from pixelmcp.engine.vision import ImageOnlyQwen2_5_VLProcessor

    _build_qwen_vl(path, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, ImageOnlyQwen2_5_VLProcessor,
                   dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32,
                        window_size=56, fullatt_block_indexes=[1]))


def _build_qwen_vl(path: Path, config_class, model_class, processor_class, vision: dict) -> None:
    from transformers import Qwen2VLImageProcessorPil

    _seeded()
    specials = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = _vlm_tokenizer(specials)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in specials}
    config = config_class(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
            bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        ),
        vision_config=dict(**vision, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    _finish_vlm(model_class(config), tokenizer, path)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14,
                                               merge_size=2, temporal_patch_size=2)
    processor = processor_class(
        image_processor=image_processor, tokenizer=tokenizer,
        chat_template=_VLM_TEMPLATE.replace("{{ IMAGE }}", "<|vision_start|><|image_pad|><|vision_end|>"),
    )
    processor.save_pretrained(path)
    _published_processor_name(path, processor_class)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "sd15": build_sd15,
    "sd15-inpaint": build_sd15_inpaint,
    "clipseg": build_clipseg,
    "sdxl": build_sdxl,
    "sd3": build_sd3,
    "flux": build_flux,
    "chat-llm": build_chat_llm,
    "depth-anything": build_depth_anything,
    "upernet": build_upernet,
    "vitpose": build_vitpose,
    "rtdetr": build_rtdetr,
    "clip": build_clip,
    "siglip": build_siglip,
    "llava": build_llava,
    "qwen2-vl": build_qwen2_vl,
    "qwen2.5-vl": build_qwen2_5_vl,
    "llava-next": build_llava_next,
    "idefics3": build_idefics3,
    "internvl": build_internvl,
    "sd15-ip-adapter": lambda p: _build_ip_adapter(p, sd15_unet, "models", "ip-adapter_sd15.safetensors"),
    "sdxl-ip-adapter": lambda p: _build_ip_adapter(p, sdxl_unet, "sdxl_models", "ip-adapter_sdxl.safetensors"),
}
BUILDERS["sd15-lora-a"] = partial(_build_lora, pipeline="StableDiffusionPipeline", unet_factory=sd15_unet, seed=301)
BUILDERS["sd15-lora-b"] = partial(_build_lora, pipeline="StableDiffusionPipeline", unet_factory=sd15_unet, seed=302,
                                  text_encoder=True)
BUILDERS["sdxl-lora"] = partial(_build_lora, pipeline="StableDiffusionXLPipeline", unet_factory=sdxl_unet, seed=303)
for _index, _control in enumerate(("canny", "depth", "pose", "segmentation")):
    BUILDERS[f"sd15-controlnet-{_control}"] = partial(_build_controlnet, unet_factory=sd15_unet, seed=100 + _index)
    BUILDERS[f"sdxl-controlnet-{_control}"] = partial(_build_controlnet, unet_factory=sdxl_unet, seed=200 + _index)


def ensure_built(name: str, cache_dir: Path) -> Path:
    """Return the folder of tiny model `name`, building it first if it is not cached.

    The build goes to a temporary sibling folder and is renamed into place, so a crash or a
    concurrent build never leaves a half-written model behind.
    """
    if name not in BUILDERS:
        raise KeyError(f"no tiny builder named {name!r}; known: {sorted(BUILDERS)}")
    target = Path(cache_dir) / f"v{TINY_VERSION}" / name
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)  # an interrupted build from an older layout
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        logger.info("building tiny model %s in %s", name, target)
        from pixelmcp.engine.loading import quiet_libraries

        quiet_libraries()
        BUILDERS[name](staging)
        (staging / ".complete").write_text("ok\n")
        try:
            os.replace(staging, target)
        except OSError:
            # Another process finished the same build first: theirs is as good as ours.
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
