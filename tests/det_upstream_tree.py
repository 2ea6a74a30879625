"""A PaddleDetection release-2.6-shaped config tree (configs/{datasets,runtime}.yml, configs/picodet/...),
written here in the shape and with the keys of the upstream files, for tests/test_det_upstream.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

UPSTREAM = {
    "datasets/coco_detection.yml": """\
        metric: COCO
        num_classes: 80

        TrainDataset:
          name: COCODataSet
          image_dir: train2017
          anno_path: annotations/instances_train2017.json
          dataset_dir: dataset/coco
          data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']

        EvalDataset:
          name: COCODataSet
          image_dir: val2017
          anno_path: annotations/instances_val2017.json
          dataset_dir: dataset/coco
          allow_empty: true

        TestDataset:
          name: ImageFolder
          anno_path: annotations/instances_val2017.json
          dataset_dir: dataset/coco
        """,
    "runtime.yml": """\
        use_gpu: true
        use_xpu: false
        use_mlu: false
        use_npu: false
        log_iter: 20
        save_dir: output
        snapshot_epoch: 1
        print_flops: false
        print_params: false

        export:
          post_process: True
          nms: True
          benchmark: False
          fuse_conv_bn: False
        """,
    "picodet/_base_/picodet_v2.yml": """\
        architecture: PicoDet
        pretrain_weights: https://example.invalid/LCNet_x1_5_pretrained.pdparams

        PicoDet:
          backbone: LCNet
          neck: LCPAN
          head: PicoHeadV2

        LCNet:
          scale: 1.5
          feature_maps: [3, 4, 5]

        LCPAN:
          out_channels: 128
          use_depthwise: True
          num_features: 4

        PicoHeadV2:
          conv_feat:
            name: PicoFeat
            feat_in: 128
            feat_out: 128
            num_convs: 4
            num_fpn_stride: 4
            norm_type: bn
            share_cls_reg: True
            use_se: True
          fpn_stride: [8, 16, 32, 64]
          feat_in_chan: 128
          prior_prob: 0.01
          reg_max: 7
          cell_offset: 0.5
          grid_cell_scale: 5.0
          static_assigner_epoch: 100
          use_align_head: True
          static_assigner: {name: ATSSAssigner, topk: 9, force_gt_matching: False}
          assigner: {name: TaskAlignedAssigner, topk: 13, alpha: 1.0, beta: 6.0}
          loss_class: {name: VarifocalLoss, use_sigmoid: False, iou_weighted: True, loss_weight: 1.0}
          loss_dfl: {name: DistributionFocalLoss, loss_weight: 0.5}
          loss_bbox: {name: GIoULoss, loss_weight: 2.5}
          nms: {name: MultiClassNMS, nms_top_k: 1000, keep_top_k: 100, score_threshold: 0.025, nms_threshold: 0.6}
        """,
    "picodet/_base_/optimizer_300e.yml": """\
        epoch: 300

        LearningRate:
          base_lr: 0.32
          schedulers:
          - !CosineDecay
            max_epochs: 300
          - !LinearWarmup
            start_factor: 0.1
            steps: 300

        OptimizerBuilder:
          optimizer:
            momentum: 0.9
            type: Momentum
          regularizer:
            factor: 0.00004
            type: L2
        """,
    "picodet/_base_/picodet_320_reader.yml": """\
        worker_num: 6
        eval_height: &eval_height 320
        eval_width: &eval_width 320
        eval_size: &eval_size [*eval_height, *eval_width]

        TrainReader:
          sample_transforms:
          - Decode: {}
          - RandomCrop: {}
          - RandomFlip: {prob: 0.5}
          - RandomDistort: {}
          batch_transforms:
          - BatchRandomResize: {target_size: [256, 288, 320, 352, 384], random_size: True, random_interp: True, keep_ratio: False}
          - NormalizeImage: {is_scale: true, mean: [0.485,0.456,0.406], std: [0.229, 0.224,0.225]}
          - Permute: {}
          - PadGT: {}
          batch_size: 64
          shuffle: true
          drop_last: true

        EvalReader:
          sample_transforms:
          - Decode: {}
          - Resize: {interp: 2, target_size: *eval_size, keep_ratio: False}
          - NormalizeImage: {is_scale: true, mean: [0.485,0.456,0.406], std: [0.229, 0.224,0.225]}
          - Permute: {}
          batch_transforms:
          - PadBatch: {pad_to_stride: 32}
          batch_size: 8
          shuffle: false

        TestReader:
          inputs_def:
            image_shape: [1, 3, *eval_height, *eval_width]
          sample_transforms:
          - Decode: {}
          - Resize: {interp: 2, target_size: *eval_size, keep_ratio: False}
          - NormalizeImage: {is_scale: true, mean: [0.485,0.456,0.406], std: [0.229, 0.224,0.225]}
          - Permute: {}
          batch_size: 1
        """,
    "picodet/picodet_s_320_coco_lcnet.yml": """\
        _BASE_: [
          '../datasets/coco_detection.yml',
          '../runtime.yml',
          '_base_/picodet_v2.yml',
          '_base_/optimizer_300e.yml',
          '_base_/picodet_320_reader.yml',
        ]

        pretrain_weights: https://example.invalid/LCNet_x0_75_pretrained.pdparams
        weights: output/picodet_s_320_coco/best_model
        find_unused_parameters: True
        use_ema: true
        epoch: 300
        snapshot_epoch: 10

        LCNet:
          scale: 0.75
          feature_maps: [3, 4, 5]
        LCPAN:
          out_channels: 96
        PicoHeadV2:
          conv_feat:
            name: PicoFeat
            feat_in: 96
            feat_out: 96
            num_convs: 2
            num_fpn_stride: 4
            norm_type: bn
            share_cls_reg: True
            use_se: True
          feat_in_chan: 96
        """,
}


#: PP-YOLOE+-s of release 2.6: the YOLOv3 architecture with a CSPResNet backbone and PPYOLOEHead, sync_bn.
PPYOLOE = {
    "ppyoloe/_base_/optimizer_80e.yml": """\
        epoch: 80

        LearningRate:
          base_lr: 0.001
          schedulers:
            - !CosineDecay
              max_epochs: 96
            - !LinearWarmup
              start_factor: 0.
              epochs: 5

        OptimizerBuilder:
          optimizer:
            momentum: 0.9
            type: Momentum
          regularizer:
            factor: 0.0005
            type: L2
        """,
    "ppyoloe/_base_/ppyoloe_plus_crn.yml": """\
        architecture: YOLOv3
        norm_type: sync_bn
        use_ema: true
        ema_decay: 0.9998
        ema_black_list: ['proj_conv.weight']
        custom_black_list: ['reduce_mean']

        YOLOv3:
          backbone: CSPResNet
          neck: CustomCSPPAN
          yolo_head: PPYOLOEHead
          post_process: ~

        CSPResNet:
          layers: [3, 6, 6, 3]
          channels: [64, 128, 256, 512, 1024]
          return_idx: [1, 2, 3]
          use_large_stem: True
          use_alpha: True

        CustomCSPPAN:
          out_channels: [768, 384, 192]
          stage_num: 1
          block_num: 3
          act: 'swish'
          spp: true
          use_alpha: True

        PPYOLOEHead:
          fpn_strides: [32, 16, 8]
          grid_cell_scale: 5.0
          grid_cell_offset: 0.5
          static_assigner_epoch: 30
          use_varifocal_loss: True
          loss_weight: {class: 1.0, iou: 2.5, dfl: 0.5}
          static_assigner:
            name: ATSSAssigner
            topk: 9
          assigner:
            name: TaskAlignedAssigner
            topk: 13
            alpha: 1.0
            beta: 6.0
          nms:
            name: MultiClassNMS
            nms_top_k: 1000
            keep_top_k: 300
            score_threshold: 0.01
            nms_threshold: 0.7
        """,
    "ppyoloe/_base_/ppyoloe_plus_reader.yml": """\
        worker_num: 4
        eval_height: &eval_height 640
        eval_width: &eval_width 640
        eval_size: &eval_size [*eval_height, *eval_width]

        TrainReader:
          sample_transforms:
            - Decode: {}
            - RandomDistort: {}
            - RandomExpand: {fill_value: [123.675, 116.28, 103.53]}
            - RandomCrop: {}
            - RandomFlip: {}
          batch_transforms:
            - BatchRandomResize: {target_size: [320, 352, 384, 416, 448], random_size: True, random_interp: True, keep_ratio: False}
            - NormalizeImage: {mean: [0., 0., 0.], std: [1., 1., 1.], norm_type: none}
            - Permute: {}
            - PadGT: {}
          batch_size: 8
          shuffle: true
          drop_last: true
          use_shared_memory: true
          collate_batch: true

        EvalReader:
          sample_transforms:
            - Decode: {}
            - Resize: {target_size: *eval_size, keep_ratio: False, interp: 2}
            - NormalizeImage: {mean: [0., 0., 0.], std: [1., 1., 1.], norm_type: none}
            - Permute: {}
          batch_size: 2

        TestReader:
          inputs_def:
            image_shape: [3, *eval_height, *eval_width]
          sample_transforms:
            - Decode: {}
            - Resize: {target_size: *eval_size, keep_ratio: False, interp: 2}
            - NormalizeImage: {mean: [0., 0., 0.], std: [1., 1., 1.], norm_type: none}
            - Permute: {}
          batch_size: 1
        """,
    "ppyoloe/ppyoloe_plus_crn_s_80e_coco.yml": """\
        _BASE_: [
          '../datasets/coco_detection.yml',
          '../runtime.yml',
          './_base_/optimizer_80e.yml',
          './_base_/ppyoloe_plus_crn.yml',
          './_base_/ppyoloe_plus_reader.yml',
        ]

        log_iter: 100
        snapshot_epoch: 5
        weights: output/ppyoloe_plus_crn_s_80e_coco/model_final

        pretrain_weights: https://example.invalid/CSPResNetb_s_pretrained.pdparams
        depth_mult: 0.33
        width_mult: 0.50
        """,
}


def upstream_tree(tmp: Path, model: str = "picodet") -> Path:
    """Write the tree under ``tmp/configs``; returns the model file a user points at (PicoDet-S 320 or
    PP-YOLOE+-s)."""
    for rel, text in {**UPSTREAM, **PPYOLOE}.items():
        (tmp / "configs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "configs" / rel).write_text(textwrap.dedent(text))
    if model == "ppyoloe":
        return tmp / "configs/ppyoloe/ppyoloe_plus_crn_s_80e_coco.yml"
    return tmp / "configs/picodet/picodet_s_320_coco_lcnet.yml"
