# TDN-ResNet50, 16 segments x 5 frames, fine-tuned on HMDB51 split 1 from
# the Kinetics-400 TDN of the same shape (TDN Table 4 / Appendix A; the
# paper reports the mean of the three splits: for splits 2 and 3 override
# the ann_file of the three dataloaders, as configs/_base_/datasets/
# hmdb51_videos.py explains). Same recipe as the UCF101 config; only the
# data and the class count differ.
_base_ = ['./tdn_kinetics400-pretrained-r50_8xb8-5x1x16-25e_ucf101-split1-rgb.py']

split = 1
data_root = 'data/hmdb51/videos'
data_root_val = data_root
ann_file_train = f'data/hmdb51/hmdb51_train_split_{split}_videos.txt'
ann_file_val = f'data/hmdb51/hmdb51_val_split_{split}_videos.txt'
ann_file_test = ann_file_val

model = dict(cls_head=dict(num_classes=51))
# load_from and load_from_allow_mismatch=['cls_head'] (the 400-class
# classifier does not fit 51 classes) come from the UCF101 config.

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root)))
test_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root)))
