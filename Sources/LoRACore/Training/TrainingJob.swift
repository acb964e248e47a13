/// A fine-tune as a user states it: the data files, how the held-out set is found, and the
/// settings. What `lora finetune` and an experiment's training both run.
public struct TrainingJob: Sendable, Equatable {
    /// The training JSONL.
    public var data: String
    /// A held-out JSONL for the evaluation loss; or, instead, `heldOutFraction` of `data`.
    public var heldOutData: String?
    public var heldOutFraction: Double?
    /// Learn the prompt tokens too, not only the answers.
    public var trainOnPrompt = false
    public var settings = TrainingSettings()

    public init(data: String, settings: TrainingSettings = TrainingSettings()) {
        self.data = data
        self.settings = settings
    }

    /// The datasets, loaded and split, and a trainer writing into `output` (for the ranks of
    /// `group`): every setting and every line of data checked before any training.
    public func makeTrainer(model: LanguageModel, output: String, group: ProcessGroup = .single) throws(LoRAError)
        -> (trainer: LoRATrainer, train: TrainingDataset, heldOut: TrainingDataset?)
    {
        if heldOutData != nil && heldOutFraction != nil {
            throw .invalidTrainingSetting(setting: "heldOutFraction", problem: "give a held-out file or a fraction, not both")
        }
        try settings.validate(model: model.model.config)
        let length = settings.sequenceLength
        var train = try TrainingDataset.load(path: data, model: model, sequenceLength: length, trainOnPrompt: trainOnPrompt)
        var heldOut = try heldOutData.map { path throws(LoRAError) in
            try TrainingDataset.load(path: path, model: model, sequenceLength: length, trainOnPrompt: trainOnPrompt)
        }
        if let heldOutFraction {
            guard heldOutFraction > 0 && heldOutFraction < 1, train.examples.count > 1 else {
                throw .invalidTrainingSetting(
                    setting: "heldOutFraction",
                    problem: "\(heldOutFraction) must be in (0, 1), of a dataset with at least 2 examples")
            }
            (train, heldOut) = train.split(heldOut: heldOutFraction, seed: settings.seed)
        }
        let trainer = try LoRATrainer(model: model, settings: settings, train: train, heldOut: heldOut, output: output, group: group)
        return (trainer, train, heldOut)
    }
}
