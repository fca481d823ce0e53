"""Training code for stylize's feed-forward style-transfer generators (dev-only, Python).

Modules:
  data     -- locating ../shared/data, content photo lists, crops/flips/scale jitter, style images
  vgg      -- VGG16 loss network (relu1_2..relu4_3) from ../shared/data/vgg16 (Keras 'caffe' preprocessing)
  models   -- Johnson et al. 2016 generator (fast / quality widths) and a small patch discriminator
  losses   -- content, Gram style, total variation, Eilertsen et al. 2019 temporal regulariser
"""
