"""What both classifiers share: labelled image channels (RecordIO, .lst, manifests, class
folders), evaluation metrics, batch prediction and the serving signature."""
